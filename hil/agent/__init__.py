"""What runs on an attached device: the agent (`python -m edgetwin.hil.agent`, also
`edgetwin agent`), the worker that trains in a child process, the protocol both ends
speak, and the requests the host builds."""
