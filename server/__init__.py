"""Set-up of the server process, done once per process and apart from any page: neither UI nor chat logic."""
