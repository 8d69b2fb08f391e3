import IPAM

print("ipam")
