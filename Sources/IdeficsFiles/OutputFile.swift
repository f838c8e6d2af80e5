import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file a user asked to be written that cannot be, with the path and the reason in plain words.
public struct OutputFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    /// A missing folder or a target that is not a regular file is the caller's doing; a failed write (a full disk)
    /// is the system's.
    public let isCallerFault: Bool
    public var description: String { "\(path): cannot be written: \(reason)" }

    public init(path: String, reason: String, isCallerFault: Bool) {
        (self.path, self.reason, self.isCallerFault) = (path, reason, isCallerFault)
    }
}

/// Writing files users name: checked before any work starts, never replacing anything but a regular file (a link,
/// a pipe, a device or a folder at the path is refused and left as it is), written beside the target and renamed
/// over it so that a failed write leaves the old file whole.
public enum OutputFile {
    /// Throws unless `path`'s folder exists and `path` is absent or a regular file.
    public static func check(_ path: String) throws {
        guard !path.isEmpty else { throw OutputFileError(path: path, reason: "the path is empty", isCallerFault: true) }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var info = stat()
        guard stat(folder, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw OutputFileError(path: path, reason: "its folder \(folder) does not exist", isCallerFault: true)
        }
        guard lstat(path, &info) == 0 else { return } // absent: will be created
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFLNK: throw OutputFileError(path: path, reason: "it is a symbolic link; refusing to replace it",
                                            isCallerFault: true)
        case S_IFDIR: throw OutputFileError(path: path, reason: "it is a folder", isCallerFault: true)
        default: throw OutputFileError(path: path, reason: "it is not a regular file (a pipe, socket or device); "
                                       + "refusing to replace it", isCallerFault: true)
        }
    }

    /// Writes every byte to `descriptor` (retrying short and interrupted writes); false on an error, with errno set.
    public static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue } else { return false } }
            offset += n
        }
        return true
    }

    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { descriptor in data.withUnsafeBytes { writeAll(descriptor, $0) } }
    }

    /// Writes `path` through `body`, which writes to the descriptor it is given and returns false (errno set) on a
    /// failure: beside the target first, synced, then renamed over it; a failure leaves nothing behind.
    public static func write(to path: String, by body: (Int32) -> Bool) throws {
        try check(path)
        let temporary = path + ".partial-\(getpid())"
        func failed(_ what: String) -> OutputFileError {
            let reason = "\(what): \(String(cString: strerror(errno)))"
            unlink(temporary)
            return OutputFileError(path: path, reason: reason, isCallerFault: false)
        }
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard descriptor >= 0 else { throw failed("cannot create \(temporary)") }
        guard body(descriptor), fsync(descriptor) == 0 else {
            close(descriptor)
            throw failed("writing failed")
        }
        guard close(descriptor) == 0 else { throw failed("writing failed") }
        guard rename(temporary, path) == 0 else { throw failed("cannot rename \(temporary) over it") }
    }
}
