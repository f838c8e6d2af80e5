import Foundation

/// The small Idefics2 the project trains and commits (Models/idefics2-demo), used when no --model is given.
enum DemoModel {
    static let relativePath = "Models/idefics2-demo"

    /// `$IDEFICS_DEMO_MODEL`, else the folder under the current directory, else under the source tree this binary
    /// was built from.
    static func locate() -> String? {
        let environment = ProcessInfo.processInfo.environment["IDEFICS_DEMO_MODEL"]
        let sourceTree = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(relativePath).path
        return [environment, relativePath, sourceTree].compactMap { $0 }.first {
            FileManager.default.fileExists(atPath: $0 + "/config.json")
        }
    }

    /// `model` when given; otherwise the demo model, announced on stderr.
    static func resolve(_ model: String?) throws -> String {
        if let model { return model }
        guard let demo = locate() else {
            throw ValidationErrorMessage("no --model given and the demo model (\(relativePath)) was not found")
        }
        Terminal.writeError("Using the demo model at \(demo) (a small Idefics2 trained on synthetic shapes; "
                            + "pass --model for another checkpoint)\n")
        return demo
    }
}

struct ValidationErrorMessage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
