"""The networks the methods adapt: pure functions of a parameter dictionary."""
