"""The shipped scenarios, the example devices file and the shipped Flower app, as package
data (`edgetwin scenarios list`): found by name, copied out for editing."""
