"""The ORM: declarative mapping, instance state, identity map, unit of work, AsyncSession.

Every public name here is re-exported by ``asyncsession``.
"""

from asyncsession.orm.attributes import InstrumentedAttribute, get_history
from asyncsession.orm.decl import (
    DeclarativeBase,
    Mapped,
    MappedColumn,
    column_property,
    declared_attr,
    deferred,
    inspect,
    mapped_column,
    registry,
    synonym,
)
from asyncsession.orm.mapper import Mapper
from asyncsession.orm.relationships import (
    DynamicMapped,
    RelationshipDirection,
    RelationshipProperty,
    WriteOnlyMapped,
    attribute_keyed_dict,
    backref,
    configure_mappers,
    keyfunc_mapping,
    relationship,
)
from asyncsession.orm.relquery import with_parent
from asyncsession.orm.session import (
    AsyncAttrs,
    AsyncSession,
    ORMExecuteState,
    async_object_session,
    async_scoped_session,
    async_sessionmaker,
    close_all_sessions,
    make_transient,
    make_transient_to_detached,
    object_session,
)
from asyncsession.orm.state import NO_VALUE, AttributeState, History, InstanceState
from asyncsession.orm.strategy_options import (
    Load,
    contains_eager,
    defaultload,
    defer,
    joinedload,
    lazyload,
    load_only,
    noload,
    raiseload,
    selectinload,
    subqueryload,
    undefer,
)
from asyncsession.orm.transaction import SessionTransaction, TxState
from asyncsession.orm.util import AliasedClass, aliased
from asyncsession.orm.writeonly import WriteOnlyCollection

__all__ = [
    "NO_VALUE",
    "AliasedClass",
    "AsyncAttrs",
    "AsyncSession",
    "AttributeState",
    "DeclarativeBase",
    "DynamicMapped",
    "History",
    "InstanceState",
    "InstrumentedAttribute",
    "Load",
    "Mapped",
    "MappedColumn",
    "Mapper",
    "ORMExecuteState",
    "RelationshipDirection",
    "RelationshipProperty",
    "SessionTransaction",
    "TxState",
    "WriteOnlyCollection",
    "WriteOnlyMapped",
    "aliased",
    "async_object_session",
    "async_scoped_session",
    "async_sessionmaker",
    "attribute_keyed_dict",
    "backref",
    "close_all_sessions",
    "column_property",
    "configure_mappers",
    "contains_eager",
    "declared_attr",
    "defaultload",
    "defer",
    "deferred",
    "get_history",
    "inspect",
    "joinedload",
    "keyfunc_mapping",
    "lazyload",
    "load_only",
    "make_transient",
    "make_transient_to_detached",
    "mapped_column",
    "noload",
    "object_session",
    "raiseload",
    "registry",
    "relationship",
    "selectinload",
    "subqueryload",
    "synonym",
    "undefer",
    "with_parent",
]
