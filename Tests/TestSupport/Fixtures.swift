import Foundation

/// Committed reference data made by `scripts/` (see scripts/README.md); tests never need Python.
public enum Fixtures {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func url(_ relativePath: String) -> URL { root.appendingPathComponent(relativePath) }

    public static func data(_ relativePath: String) throws -> Data { try Data(contentsOf: url(relativePath)) }

    /// Reads a JSON Lines file into one dictionary per line.
    public static func jsonLines(_ relativePath: String) throws -> [[String: Any]] {
        let text = String(decoding: try data(relativePath), as: UTF8.self)
        return try text.split(separator: "\n").map {
            guard let object = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] else {
                throw CocoaError(.coderReadCorrupt)
            }
            return object
        }
    }
}
