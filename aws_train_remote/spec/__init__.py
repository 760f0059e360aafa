"""Pure layer: flags and configuration in, a validated frozen JobSpec out. No I/O but reading files."""
