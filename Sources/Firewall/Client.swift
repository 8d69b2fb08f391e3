import CMnl
import CNftnl
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// Talks nf_tables over one netfilter netlink socket: atomic batches with per-message ACKs,
/// generation-checked batches, and dumps to read objects back.
///
/// Synchronous and single-threaded by design (CNI plugins are short-lived); one client per
/// network namespace, because the socket stays in the namespace it was opened in.
public final class NFTablesClient {
    public let transport: NetfilterTransport
    private var nextSequence: UInt32

    /// `firstSequence` is fixed in unit tests so encoded bytes are predictable.
    public init(transport: NetfilterTransport, firstSequence: UInt32 = 1) {
        self.transport = transport
        nextSequence = firstSequence
    }

    /// A client on a fresh socket in `namespace` (the calling thread's own when nil).
    public convenience init(namespace: NetworkNamespace? = nil) throws(FirewallError) {
        let transport = try NetlinkSocketTransport(namespace: namespace)
        // Sequence numbers only need to be unique per socket; a time-based start makes
        // replies from an unrelated earlier socket in a log easy to tell apart.
        self.init(transport: transport, firstSequence: UInt32(truncatingIfNeeded: time(nil)))
    }

    /// Encodes without sending (what `commit` would send next), for tests and diagnostics.
    public func encode(_ batch: Batch, generation: UInt32? = nil) -> EncodedBatch {
        var encoder = BatchEncoder(firstSequence: nextSequence)
        let encoded = encoder.encode(batch, generation: generation)
        nextSequence = encoder.next
        return encoded
    }

    /// Sends `batch` as one transaction and waits for the kernel's verdict on every message.
    /// With `generation`, the kernel refuses the whole batch (`isGenerationChanged`) if the
    /// ruleset changed since that generation was read.
    public func commit(_ batch: Batch, generation: UInt32? = nil) throws(FirewallError) {
        guard !batch.isEmpty else { return }
        let encoded = encode(batch, generation: generation)
        try transport.send(encoded.datagram)
        try awaitAcknowledgements(encoded)
    }

    private func awaitAcknowledgements(_ encoded: EncodedBatch) throws(FirewallError) {
        var waiting = Set(encoded.messages.map(\.sequence))
        let bySequence = Dictionary(uniqueKeysWithValues: encoded.messages.map { ($0.sequence, $0) })
        var firstError: FirewallError?
        while !waiting.isEmpty {
            let datagram: [UInt8]
            do {
                datagram = try transport.receive()
            } catch {
                // After a failure the kernel may stop acknowledging the rest; report the cause.
                throw firstError ?? error
            }
            for message in NetlinkMessage.split(datagram) {
                guard let (code, text) = message.errorCode else { continue }
                if message.sequence == encoded.begin.sequence, code != 0 {
                    // Errors against BATCH_BEGIN concern the whole transaction: a stale
                    // generation (ERESTART) or a failure while committing.
                    let operation = code == -ERESTART ? "commit generation-checked batch" : "commit batch"
                    throw FirewallError(
                        operation, object: "\(encoded.messages.count) messages", errno: -code, kernelMessage: text)
                }
                guard waiting.remove(message.sequence) != nil else { continue }
                if code != 0, firstError == nil, let failed = bySequence[message.sequence] {
                    firstError = FirewallError(
                        failed.operation, object: failed.object, errno: -code, kernelMessage: text)
                }
            }
        }
        if let firstError { throw firstError }
    }

    // MARK: - Requests and dumps

    /// Sends one request and collects every reply message up to NLMSG_DONE (dumps) or the
    /// first reply (plain gets); retries a dump the kernel marks as interrupted.
    func request(
        _ type: nf_tables_msg_types, family: UInt8, dump: Bool, operation: String, object: String,
        payload: (UnsafeMutablePointer<nlmsghdr>) -> Void = { _ in }
    ) throws(FirewallError) -> [NetlinkMessage] {
        var attempt = 0
        while true {
            attempt += 1
            let sequence = nextSequence
            nextSequence &+= 1
            var scratch = [CChar](repeating: 0, count: 8192)
            let bytes = scratch.withUnsafeMutableBufferPointer { buffer -> [UInt8] in
                guard let base = buffer.baseAddress,
                    let header = nftnl_nlmsg_build_hdr(
                        base, UInt16(type.rawValue), UInt16(family), dump ? nlmFDump : nlmFAck, sequence)
                else { return [] }
                payload(header)
                return bytesOf(header)
            }
            try transport.send(bytes)
            let (messages, interrupted) = try collectReplies(
                from: transport, sequence: sequence, dump: dump, operation: operation, object: object)
            if !interrupted || attempt >= 5 { return messages }
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

/// Reads replies to request `sequence` until NLMSG_DONE (dump) or the ACK (plain get);
/// the Bool says whether the kernel flagged the dump as interrupted (NLM_F_DUMP_INTR).
func collectReplies(
    from transport: NetfilterTransport, sequence: UInt32, dump: Bool, operation: String, object: String
) throws(FirewallError) -> ([NetlinkMessage], Bool) {
    var collected: [NetlinkMessage] = []
    var interrupted = false
    while true {
        let datagram = try transport.receive()
        for message in NetlinkMessage.split(datagram) where message.sequence == sequence {
            if message.flags & nlmFDumpIntr != 0 { interrupted = true }
            if message.type == nlmsgDone { return (collected, interrupted) }
            if let (code, text) = message.errorCode {
                if code != 0 {
                    throw FirewallError(operation, object: object, errno: -code, kernelMessage: text)
                }
                // The ACK that ends a plain get.
                if !dump { return (collected, interrupted) }
                continue
            }
            collected.append(message)
        }
    }
}
