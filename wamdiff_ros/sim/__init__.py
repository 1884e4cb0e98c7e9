"""Embedded driving world: scenarios on highway-env, a multi-camera renderer and an expert driver."""
