"""What `integration-platform up` shows while its processes run: their logs go to files under
data/logs/; the console gets one status line per process per interval, each distinct warning
or error once, and a line when a process exits."""
