"""The meter side: frames, telegrams, values, the forecast, flow rates, re-broadcast.

Free of Home Assistant (a test keeps it so): what a P1 port says, and what follows from it.
"""
