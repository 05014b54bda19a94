"""Placeholder: the real demo of asyncsession replaces this file."""

print("asyncsession demo: not written yet (examples/demo.py is a placeholder)")
