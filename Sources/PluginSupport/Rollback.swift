import CNI

/// What a failed ADD must undo. Each step that creates something pushes how to remove it; if
/// ADD fails, `withRollback` runs the undo actions newest first and rethrows the original
/// error. An undo that fails is logged, not thrown, so the cause reaches the runtime (which
/// will DEL anyway).
public struct Rollback {
    private var steps: [(what: String, undo: () throws -> Void)] = []

    public init() {}

    /// `what` completes "could not …" in the log line of a failing undo.
    public mutating func push(_ what: String, _ undo: @escaping () throws -> Void) {
        steps.append((what, undo))
    }

    /// Runs every undo action, newest first, logging the ones that fail.
    public func undo() {
        for step in steps.reversed() {
            do { try step.undo() } catch { cniLog("after a failed ADD, could not \(step.what): \(error)") }
        }
    }
}

/// Runs an ADD's steps; when one throws, undoes what the earlier ones pushed and rethrows.
public func withRollback<T>(_ body: (inout Rollback) throws -> T) throws -> T {
    var rollback = Rollback()
    do {
        return try body(&rollback)
    } catch {
        rollback.undo()
        throw error
    }
}
