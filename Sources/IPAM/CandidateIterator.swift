import IPAddressing

/// The round-robin order host-local hands addresses out in: start just after the set's
/// last reserved address (when it still lies in the set, else at the first range's start),
/// walk to the range's end, continue with the next range, wrap around, and stop when back
/// at the first candidate. Gateways are never produced.
///
/// Pure, so allocation order is testable without a store.
public struct CandidateIterator: IteratorProtocol, Sequence {
    private let rangeSet: RangeSet
    private let gateways: Set<IPAddress>
    private var rangeIndex: Int
    private var cursor: IPAddress?
    private var first: IPAddress?
    private var finished = false

    public init(rangeSet: RangeSet, lastReserved: IPAddress?) {
        self.rangeSet = rangeSet
        self.gateways = rangeSet.gateways
        if let lastReserved, let index = rangeSet.ranges.firstIndex(where: { $0.contains(lastReserved) }) {
            rangeIndex = index
            cursor = lastReserved
        } else {
            rangeIndex = 0
            cursor = nil
        }
    }

    public mutating func next() -> IPAddress? {
        while !finished {
            let range = rangeSet.ranges[rangeIndex]
            let candidate: IPAddress
            if let cursor, cursor != range.end, let following = cursor.advanced(by: 1) {
                candidate = following
            } else if cursor == nil {
                candidate = range.start
            } else {
                rangeIndex = (rangeIndex + 1) % rangeSet.ranges.count
                candidate = rangeSet.ranges[rangeIndex].start
            }
            cursor = candidate
            if let first {
                if candidate == first {
                    finished = true
                    return nil
                }
            } else {
                first = candidate
            }
            if gateways.contains(candidate) { continue }
            return candidate
        }
        return nil
    }
}
