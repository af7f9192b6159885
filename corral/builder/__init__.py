"""corral-builder: image builds from distrobuilder's YAML definitions (sources, generators, actions,
packages, LXD outputs). A client-side tool: the daemon never imports it."""
