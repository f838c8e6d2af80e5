import Foundation
import TestSupport
import XCTest

/// Runs the `idefics` binary the test build made (beside the test bundle) and collects what a user would see.
struct CLIRun {
    let status: Int32
    let stdout: String
    let stderr: String
    /// Killed by a signal (a crash) rather than exiting.
    let signaled: Bool
}

enum CLI {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let demoModel = repository.appendingPathComponent("Models/idefics2-demo")
    static let exampleImage = repository.appendingPathComponent("Examples/shapes-1.png").path

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("idefics")
    }

    /// `stdout` replaces the captured pipe (e.g. /dev/full); a run over `timeout` seconds is killed and fails.
    static func run(_ arguments: [String], stdin: String? = nil, stdout: FileHandle? = nil, timeout: Double = 120,
                    file: StaticString = #filePath, line: UInt = #line) throws -> CLIRun {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("no idefics binary at \(binary.path): build the package (swift build --build-tests)", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = stdout ?? out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Drain both pipes while the process runs, so that a chatty one cannot block on a full pipe.
        let outData = Collected(), errData = Collected()
        let group = DispatchGroup()
        for (pipe, sink) in [(out, outData), (err, errData)] where sink === errData || stdout == nil {
            group.enter()
            DispatchQueue.global().async {
                sink.set(pipe.fileHandleForReading.readDataToEndOfFile())
                group.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            XCTFail("idefics \(arguments.joined(separator: " ")) hung (killed after \(timeout) s)", file: file, line: line)
        }
        process.waitUntilExit()
        group.wait()
        return CLIRun(status: process.terminationStatus, stdout: String(decoding: outData.get(), as: UTF8.self),
                      stderr: String(decoding: errData.get(), as: UTF8.self),
                      signaled: process.terminationReason == .uncaughtSignal)
    }

    /// Asserts a clean failure: a non-zero exit (not a signal), and stderr containing every one of `messages`.
    static func assertRefused(_ arguments: [String], status: Int32 = 1, stdin: String? = nil, _ messages: String...,
                              timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try run(arguments, stdin: stdin, timeout: timeout, file: file, line: line)
        XCTAssertFalse(run.signaled, "crashed: \(run.stderr)", file: file, line: line)
        XCTAssertEqual(run.status, status, "exit status of \(arguments): \(run.stderr)", file: file, line: line)
        for message in messages {
            XCTAssertTrue(run.stderr.contains(message), "stderr lacks \"\(message)\": \(run.stderr)", file: file, line: line)
        }
        XCTAssertFalse(run.stderr.contains("Error Domain="), "raw Foundation error: \(run.stderr)", file: file, line: line)
    }

    /// A copy of the demo model in `folder`: files named in `edits` rewritten after their edit, the rest linked.
    static func demoCopy(in folder: URL, edits: [String: (inout [String: Any]) -> Void] = [:]) throws -> URL {
        let copy = folder.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: demoModel.path) {
            let source = demoModel.appendingPathComponent(name), target = copy.appendingPathComponent(name)
            guard let edit = edits[name] else {
                try FileManager.default.createSymbolicLink(at: target, withDestinationURL: source)
                continue
            }
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as! [String: Any]
            edit(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: target)
        }
        return copy
    }
}

/// The bytes one reader thread collected.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ new: Data) { lock.withLock { data = new } }
    func get() -> Data { lock.withLock { data } }
}
