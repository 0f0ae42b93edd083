"""Client selection: the policies that rank a round's check-in pool, their parameters,
and the read-only view of the clients they rank."""
