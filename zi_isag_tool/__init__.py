"""zi-isag-tool."""
