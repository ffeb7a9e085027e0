"""Everything that talks to Kite: login, REST wrapper, market stream, instruments, order gateways."""
