"""One function per DVC stage; the scripts in pipelines/ only parse config and call these."""
