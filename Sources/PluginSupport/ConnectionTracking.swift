import CNI
import Firewall
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

/// Conntrack state dies with the attachment: when DEL (or GC) gives an address up, every
/// entry naming it in the host namespace, where masquerade and DNAT happen, is deleted, so a
/// later container given the same address inherits no NAT state it never made. Entries in the
/// container's own namespace die with that namespace.
public enum ConnectionTracking {
    /// Deletes the entries naming `addresses`; a failure is recorded, so DEL reports it and the
    /// runtime retries. No conntrack in the kernel means nothing to forget.
    public static func forget(_ addresses: [IPAddress], kernel: PluginKernel, failures: inout CNIErrorList) {
        guard !addresses.isEmpty else { return }
        do throws(FirewallError) {
            try kernel.conntrack().forget(addresses)
        } catch {
            if [ENOENT, EOPNOTSUPP, EPROTONOSUPPORT].contains(error.errno) { return }
            failures.record(error)
        }
    }

    /// The container-side addresses of `result` on `ifName`: those of an interface of that
    /// name inside a sandbox, or of no interface at all (abbreviated results). Host-side
    /// addresses (a gateway, a host veth) are shared and never forgotten.
    public static func containerAddresses(in result: CNIResult?, ifName: String) -> [IPAddress] {
        guard let result else { return [] }
        return result.ips.filter { ip in
            guard let index = ip.interface else { return true }
            guard result.interfaces.indices.contains(index) else { return false }
            let interface = result.interfaces[index]
            return interface.name == ifName && !(interface.sandbox ?? "").isEmpty
        }.map(\.address.address)
    }
}
