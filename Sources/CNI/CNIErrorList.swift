/// The failures of a DEL or GC, which keeps going past each one (everything that can be removed
/// is removed) and then reports them together as one `CNIError`.
///
/// Which code the combined error carries, so a runtime still sees the most useful one:
/// 1. 11 (try again later) if any failure has it: the runtime retries DEL, and the retry redoes
///    whatever else failed too, since DEL and GC are idempotent.
/// 2. Otherwise the code of the first failure whose code is not 999: a specific cause (an
///    unreachable netns, an I/O failure, a bad config) says more than the generic one.
/// 3. Otherwise 999.
///
/// Each failure keeps its own code on the way in: a `CNIError` or `CNIErrorConvertible` as it
/// is, anything else as 999 (`CNIError(converting:)`). A single failure is reported as it was,
/// with the context prepended to its message.
public struct CNIErrorList: Sendable {
    public private(set) var failures: [CNIError] = []

    public init() {}

    public var isEmpty: Bool { failures.isEmpty }

    public mutating func record(_ error: any Error) {
        failures.append(CNIError(converting: error))
    }

    /// Runs one independent step; a failure is recorded and the caller goes on with the next.
    public mutating func attempt(_ step: () throws -> Void) {
        do { try step() } catch { record(error) }
    }

    /// The position of the failure whose code the combined error carries (see the type's rule).
    public static func mostSpecific(_ codes: [CNIErrorCode]) -> Int? {
        codes.firstIndex(of: .tryAgainLater) ?? codes.firstIndex { $0 != .internalError }
            ?? (codes.isEmpty ? nil : 0)
    }

    /// The combined error, `"<context>: <failure>; <failure>"`; nil when nothing failed.
    public func combined(_ context: String) -> CNIError? {
        guard let chosen = CNIErrorList.mostSpecific(failures.map(\.code)) else { return nil }
        if failures.count == 1 {
            return CNIError(failures[0].code, "\(context): \(failures[0].msg)", details: failures[0].details)
        }
        return CNIError(
            failures[chosen].code, "\(context): " + failures.map(\.description).joined(separator: "; "))
    }

    /// Throws the combined error, if anything failed.
    public func throwIfAny(_ context: String) throws(CNIError) {
        if let error = combined(context) { throw error }
    }
}
