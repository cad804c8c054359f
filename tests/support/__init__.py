"""Test support: fakes and local servers that stand in for the outside world."""
