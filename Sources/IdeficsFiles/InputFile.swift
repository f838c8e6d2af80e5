import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file a user named that cannot be used, with the reason in plain words (the caller's doing).
public struct InputFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var isCallerFault: Bool { true }
    public var description: String { "\(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// Reading the files users name or hand over (checkpoint JSON, evaluation sets, prompt files, images): only regular
/// files (a pipe or a device could block forever or never end), at most `maxBytes`, with reasons in plain words.
public enum InputFile {
    public static let maxBytes = 1 << 30

    public static func data(at path: String, maxBytes: Int = maxBytes) throws -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else { throw InputFileError(path: path, reason: String(cString: strerror(errno))) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw InputFileError(path: path, reason: "is a folder, not a file")
        default: throw InputFileError(path: path, reason: "is not a regular file (a pipe or a device)")
        }
        guard Int(info.st_size) <= maxBytes else {
            throw InputFileError(path: path, reason: "has \(info.st_size) bytes, more than the limit of \(maxBytes)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputFileError(path: path, reason: String(cString: strerror(errno)))
        }
        return data
    }

    public static func text(at path: String, maxBytes: Int = maxBytes) throws -> String {
        try text(try data(at: path, maxBytes: maxBytes), from: path)
    }

    /// Bytes read from `source` (a path, "standard input") as UTF-8 text; invalid UTF-8 is an error, not U+FFFD.
    public static func text(_ data: Data, from source: String) throws -> String {
        guard let text = String(validating: data, as: UTF8.self) else {
            throw InputFileError(path: source, reason: "is not valid UTF-8 text")
        }
        return text
    }

    /// Parses JSON; the error's reason is the parser's own plain description ("Unexpected end of file during JSON
    /// parse.", "Invalid value around character 12.") rather than Foundation's generic wrapper.
    public static func json(_ data: Data) throws -> Any {
        do {
            return try JSONSerialization.jsonObject(with: data)
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw JSONError(reason: detail ?? "the parser gave no reason")
        }
    }
}

/// Why some bytes are not JSON, in the parser's plain words (the caller says which file and that it is not JSON).
public struct JSONError: Error, Equatable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
