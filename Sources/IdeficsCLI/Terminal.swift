import Foundation
import Idefics
#if canImport(Glibc)
import Glibc
#endif

/// stdout/stderr helpers: unbuffered streaming text, JSON, and load progress only when stderr is a terminal.
enum Terminal {
    /// Writes to stdout; a failed write (a full disk, a closed pipe) ends the process with the reason on stderr.
    static func write(_ text: String) {
        guard writeAll(STDOUT_FILENO, text) else {
            let reason = String(cString: strerror(errno))
            writeError("Error: cannot write to standard output: \(reason)\n")
            exit(1)
        }
    }

    static func writeError(_ text: String) {
        _ = writeAll(STDERR_FILENO, text) // nowhere left to report a failure
    }

    /// A word on stderr when `--threads` asks for more than the processors (a pool caps itself to them).
    static func noteThreadsCapped(_ threads: Int?) {
        guard let threads, threads > WorkerPool.processorCount else { return }
        writeError("--threads \(threads) is more than the \(WorkerPool.processorCount) processors; "
                   + "using \(WorkerPool.processorCount)\n")
    }

    private static func writeAll(_ descriptor: Int32, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { OutputFile.writeAll(descriptor, $0) }
    }

    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }

    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    static func reportingLoad<T>(of model: String, _ load: (String) throws -> T) rethrows -> T {
        guard stderrIsTerminal else { return try load(model) }
        writeError("Loading \(model)…")
        let start = ContinuousClock.now
        let value = try load(model)
        writeError(String(format: " done in %.2f s\n", (ContinuousClock.now - start).seconds))
        return value
    }
}

