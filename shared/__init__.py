"""Code that two or more proctrail services share: events, bus, config, logging, auth."""
