"""rackbus protocols: sans-I/O cores and thin Trio adapters for DHCP, TFTP, IPMI, SNMP, HTTP boot.

Knows nothing of actors or the bus.
"""
