"""SigDL real boards: re-testing a target on the physical board over SSH."""
