"""Clinical rules shared by the harvest and implant services."""
