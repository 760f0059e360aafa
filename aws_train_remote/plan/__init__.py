"""Pure planning: what to upload (source bundle, driver, inputs) and the exact CreateTrainingJob request."""
