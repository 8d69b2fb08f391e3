import CMnl
import CNftnl
import CPierShim
import NetNS
import NetlinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// Talks nf_tables over one netfilter netlink socket: atomic batches with per-message ACKs,
/// generation-checked batches, and dumps to read objects back.
///
/// Synchronous and single-threaded by design (CNI plugins are short-lived); one client per
/// network namespace, because the socket stays in the namespace it was opened in.
public final class NFTablesClient {
    private let session: NetlinkSession

    public var transport: NetfilterTransport { session.transport }

    /// `firstSequence` is fixed in unit tests so encoded bytes are predictable.
    public init(transport: NetfilterTransport, firstSequence: UInt32 = 1) {
        session = NetlinkSession(transport: transport, firstSequence: firstSequence)
    }

    /// A client on a fresh socket in `namespace` (the calling thread's own when nil).
    public init(namespace: NetworkNamespace? = nil) throws(FirewallError) {
        session = try .netfilter(namespace: namespace)
    }

    /// Encodes without sending (what `commit` would send next), for tests and diagnostics.
    public func encode(_ batch: Batch, generation: UInt32? = nil) -> EncodedBatch {
        var encoder = BatchEncoder(firstSequence: session.nextSequence)
        let encoded = encoder.encode(batch, generation: generation)
        session.nextSequence = encoder.next
        return encoded
    }

    /// Sends `batch` as one transaction and waits for the kernel's verdict on every message.
    /// With `generation`, the kernel refuses the whole batch (`isGenerationChanged`) if the
    /// ruleset changed since that generation was read.
    public func commit(_ batch: Batch, generation: UInt32? = nil) throws(FirewallError) {
        guard !batch.isEmpty else { return }
        if batch.removesObjects { NetfilterRelease.noteRemoval(on: session.transport) }
        let encoded = encode(batch, generation: generation)
        let operation = "commit batch"
        let failures: [(sequence: UInt32, error: NetlinkError)]
        do throws(NetlinkError) {
            try session.transport.send(encoded.datagram)
            failures = try session.acknowledgements(
                of: Set(encoded.messages.map(\.sequence)), accepting: encoded.begin.sequence...encoded.end.sequence,
                operation: operation)
        } catch {
            throw FirewallError(error, object: "\(encoded.messages.count) messages")
        }
        // Errors against BATCH_BEGIN concern the whole transaction: a stale generation
        // (ERESTART) or a failure while committing.
        if let whole = failures.first(where: { $0.sequence == encoded.begin.sequence }) {
            throw FirewallError(
                whole.error, operation: whole.error.errno == ERESTART ? "commit generation-checked batch" : operation,
                object: "\(encoded.messages.count) messages")
        }
        guard let first = failures.first else { return }
        let failed = encoded.messages.first { $0.sequence == first.sequence }
        throw FirewallError(first.error, operation: failed?.operation, object: failed?.object ?? "")
    }

    // MARK: - Requests and dumps

    /// Sends one request built by libnftnl and collects its reply messages: up to NLMSG_DONE
    /// for a dump (restarted when the kernel marks it interrupted), up to the ACK for a get.
    func request(
        _ type: nf_tables_msg_types, family: UInt8, dump: Bool, operation: String, object: String,
        payload: (UnsafeMutablePointer<nlmsghdr>) -> Void = { _ in }
    ) throws(FirewallError) -> [NetlinkMessage] {
        func encode(_ sequence: UInt32) -> [UInt8] {
            var scratch = [CChar](repeating: 0, count: 8192)
            return scratch.withUnsafeMutableBufferPointer { buffer -> [UInt8] in
                guard let base = buffer.baseAddress,
                    let header = nftnl_nlmsg_build_hdr(
                        base, UInt16(type.rawValue), UInt16(family), UInt16(dump ? NLM_F_DUMP : NLM_F_ACK), sequence)
                else { return [] }
                payload(header)
                return bytesOf(header)
            }
        }
        do throws(NetlinkError) {
            if dump { return try session.dump(operation: operation, encoded: encode) }
            return try session.execute(encoded: encode, operation: operation)
        } catch {
            throw FirewallError(error, object: object)
        }
    }

    // MARK: - Generations

    /// The current ruleset generation (NFT_MSG_GETGEN).
    public func generation() throws(FirewallError) -> UInt32 {
        let replies = try request(
            NFT_MSG_GETGEN, family: 0, dump: false, operation: "get ruleset generation", object: "")
        for reply in replies where reply.type & 0xff == UInt16(NFT_MSG_NEWGEN.rawValue) {
            let gen = NFTObject(nftnl_gen_alloc(), free: nftnl_gen_free)
            guard parse(reply, with: { nftnl_gen_nlmsg_parse($0, gen.pointer) }) else { continue }
            return nftnl_gen_get_u32(gen.pointer, UInt16(NFTNL_GEN_ID))
        }
        throw FirewallError("get ruleset generation", errno: EPROTO)
    }

    /// Read-modify-write without lost updates: reads the generation, lets `body` read what
    /// it needs and return a batch, and commits that batch only if nothing changed the
    /// ruleset in between; otherwise starts again (up to `maxAttempts`). Returns the number
    /// of attempts it took.
    @discardableResult
    public func withGenerationCheck(
        maxAttempts: Int = 10, _ body: (UInt32) throws(FirewallError) -> Batch
    ) throws(FirewallError) -> Int {
        var attempt = 0
        while true {
            attempt += 1
            let generation = try generation()
            let batch = try body(generation)
            // Nothing to change: no commit, so no transaction for the kernel to release later
            // (closing a socket waits for pending releases, an RCU grace period).
            if batch.isEmpty { return attempt }
            do {
                try commit(batch, generation: generation)
                return attempt
            } catch  where error.isGenerationChanged && attempt < maxAttempts {
                continue
            }
        }
    }
}
