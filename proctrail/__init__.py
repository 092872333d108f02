"""proctrail: the command line and the process supervisor."""
