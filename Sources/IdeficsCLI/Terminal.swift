import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// stdout/stderr helpers: unbuffered streaming text, JSON, and load progress only when stderr is a terminal.
enum Terminal {
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }

    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    static func reportingLoad<T>(of model: String, _ load: (String) throws -> T) rethrows -> T {
        guard stderrIsTerminal else { return try load(model) }
        FileHandle.standardError.write(Data("Loading \(model)…".utf8))
        let start = ContinuousClock.now
        let value = try load(model)
        FileHandle.standardError.write(Data(String(format: " done in %.2f s\n", (ContinuousClock.now - start).seconds).utf8))
        return value
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
