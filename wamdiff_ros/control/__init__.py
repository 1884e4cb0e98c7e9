"""Vehicle motion models and trajectory trackers (kinematic bicycle, LQR)."""
