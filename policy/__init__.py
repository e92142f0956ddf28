"""The team's policy pack (run by `pulumi preview|up --policy-pack policy`); rules in rules.py."""
