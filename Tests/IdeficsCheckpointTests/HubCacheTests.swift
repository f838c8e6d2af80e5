import Foundation
@testable import IdeficsCheckpoint
import TestSupport
import XCTest

/// A cache laid out as huggingface_hub writes it: `refs/<branch>` holds a commit hash, `snapshots/<hash>/<file>` are
/// relative symlinks into `blobs/<sha>`.
final class HubCacheTests: XCTestCase {
    private let main = String(repeating: "a", count: 40), other = String(repeating: "b", count: 40)
    private var cache: URL!
    private var repo: URL { cache.appendingPathComponent("models--Org--tiny") }
    private var environment: [String: String] { ["HF_HUB_CACHE": cache.path, "HOME": "/nonexistent"] }
    private let fileManager = FileManager.default

    override func setUpWithError() throws {
        cache = try temporaryDirectory()
        try snapshot(main, files: ["config.json": "{\"v\": 1}", "tokenizer.json": "{}"])
        try snapshot(other, files: ["config.json": "{\"v\": 2}"])
        try ref("main", main)
        try ref("v2", other)
    }

    private func snapshot(_ hash: String, files: [String: String]) throws {
        let folder = repo.appendingPathComponent("snapshots/\(hash)")
        try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        try fileManager.createDirectory(at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        for (name, text) in files {
            let blob = "\(hash.prefix(8))\(name.hashValue.magnitude)"
            try Data(text.utf8).write(to: repo.appendingPathComponent("blobs/\(blob)"))
            try fileManager.createSymbolicLink(atPath: folder.appendingPathComponent(name).path,
                                               withDestinationPath: "../../blobs/\(blob)")
        }
    }

    private func ref(_ name: String, _ text: String) throws {
        try fileManager.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try Data((text + "\n").utf8).write(to: repo.appendingPathComponent("refs/\(name)"))
    }

    private func resolve(_ revision: String? = nil) throws -> String {
        try HubCache.resolve("Org/tiny", revision: revision, environment: environment).lastPathComponent
    }

    func testRefsSnapshotsAndSymlinkedFiles() throws {
        XCTAssertEqual(try resolve(), main)
        XCTAssertEqual(try resolve("v2"), other)
        XCTAssertEqual(try resolve(other), other)
        let folder = try HubCache.resolve("Org/tiny", environment: environment)
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("config.json"), encoding: .utf8), "{\"v\": 1}")
    }

    func testUnknownRevisionListsWhatThereIs() {
        XCTAssertEqual(errorText { try resolve("v3") },
                       "Hugging Face cache: \(repo.path): has no revision \"v3\" (refs: main, v2; snapshots: \(main), \(other))")
        XCTAssertTrue(errorText { try resolve("../../etc") }.contains("revision \"../../etc\" is not a branch, tag or commit"))
    }

    func testRefThatIsNotACommitHashIsRefused() throws {
        try ref("main", "../../../../etc")
        XCTAssertEqual(errorText { try resolve() },
                       "Hugging Face cache: \(repo.path)/refs/main: holds \"../../../../etc\", not a 40-digit commit hash")
    }

    func testSymlinkLeavingTheCacheIsRefused() throws {
        let outside = try temporaryDirectory().appendingPathComponent("secret.json")
        try Data("{}".utf8).write(to: outside)
        let link = repo.appendingPathComponent("snapshots/\(main)/model.safetensors")
        try fileManager.createSymbolicLink(atPath: link.path, withDestinationPath: outside.path)
        XCTAssertTrue(errorText { try resolve() }.hasPrefix("Hugging Face cache: \(link.path): points outside the model's cache folder"))
    }

    func testBrokenLinkAndMissingConfigSayTheDownloadIsIncomplete() throws {
        let link = repo.appendingPathComponent("snapshots/\(main)/model.safetensors")
        try fileManager.createSymbolicLink(atPath: link.path, withDestinationPath: "../../blobs/never-downloaded")
        XCTAssertEqual(errorText { try resolve() }, "Hugging Face cache: \(link.path): is a broken link (incomplete download?)")
        try fileManager.removeItem(at: link)
        try fileManager.removeItem(at: repo.appendingPathComponent("snapshots/\(main)/config.json"))
        XCTAssertEqual(errorText { try resolve() },
                       "Hugging Face cache: \(repo.path)/snapshots/\(main): has no config.json (incomplete download?)")
    }

    func testWithoutRefsTheNewestCompleteSnapshot() throws {
        try fileManager.removeItem(at: repo.appendingPathComponent("refs"))
        XCTAssertTrue([main, other].contains(try resolve()))
        XCTAssertTrue(errorText { try resolve("main") }.contains("has no revision \"main\" (refs: none;"))
    }

    func testModelNotInCacheSaysWhereItLooked() {
        XCTAssertEqual(errorText { try HubCache.resolve("Org/absent", environment: self.environment) },
                       "model Org/absent is not in the local Hugging Face cache (searched \(cache.path)/models--Org--absent, "
                       + "/nonexistent/.cache/huggingface/hub/models--Org--absent); download it first, e.g. "
                       + "`huggingface-cli download Org/absent`, or pass a checkpoint folder")
    }

    func testRevisionOnlyForModelIDs() throws {
        let folder = try temporaryDirectory()
        XCTAssertEqual(errorText { try Checkpoint.resolveDirectory(folder.path, revision: "main") },
                       "\(folder.path): is a folder; a revision applies only to a model id")
    }
}
