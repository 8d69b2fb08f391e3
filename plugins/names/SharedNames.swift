import CNI
import ClusterStore
import IPAM
import NameService

/// Names shared through an overlay network's cluster store, so every host's server answers the
/// containers of the other hosts too:
///
///     pier/names/<network>/<host>/<containerID>/<ifname>   the attachment's record (JSON)
///
/// The plugin writes and deletes its host's keys; each server reads the others' every two
/// seconds (`NameServer.sharedRecords`), using their names and addresses only.
enum SharedNames {
    static func prefix(_ network: String) -> String { "pier/names/\(network)/" }

    static func key(network: String, host: String, containerID: String, ifName: String) -> String {
        prefix(network) + host + "/" + containerID + "/"
            + (StoreKey.isValidSegment(ifName) ? ifName : "if-" + ifName.utf8.map { String($0, radix: 16) }.joined())
    }

    static func publish(_ record: NameRecord, store config: ClusterStoreConfig) throws {
        let store = try config.open()
        let host = try config.resolvedHost()
        try store.put(
            key(network: record.network, host: host, containerID: record.containerID, ifName: record.ifName),
            value: record.json.encodedString)
    }

    /// Removes this host's key of the attachment; a key already gone is no error.
    static func withdraw(network: String, containerID: String, ifName: String, store config: ClusterStoreConfig)
        throws
    {
        let store = try config.open()
        let name = key(network: network, host: try config.resolvedHost(), containerID: containerID, ifName: ifName)
        guard let current = try store.get(name) else { return }
        _ = try store.delete(name, ifValue: current.value)
    }

    /// What the server asks: every other host's records of `network` in the store `json` names.
    /// A store that cannot be read yields none (logged by the caller's next attempt).
    static func otherHosts(storeJSON json: JSONValue, network: String) -> [NameRecord] {
        guard let object = json.objectValue,
            let config = try? ClusterStoreConfig(
                JSONReader(object, code: .invalidNetworkConfig, context: "names store")),
            let store = try? config.open(), let host = try? config.resolvedHost(),
            let snapshot = try? store.list(prefix: prefix(network))
        else { return [] }
        let own = prefix(network) + host + "/"
        return snapshot.records.compactMap { entry in
            guard !entry.key.hasPrefix(own) else { return nil }
            return try? NameRecord(parsing: Array(entry.value.utf8))
        }
    }
}
