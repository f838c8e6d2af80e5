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

/// Reading the text files users name (evaluation sets, prompt files): only regular files, at most `maxBytes`, UTF-8.
public enum InputFile {
    public static let maxBytes = 1 << 30

    public static func text(at path: String, maxBytes: Int = maxBytes) throws -> String {
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
            throw InputFileError(path: path, reason: "cannot be read")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw InputFileError(path: path, reason: "is not valid UTF-8 text")
        }
        return text
    }
}
