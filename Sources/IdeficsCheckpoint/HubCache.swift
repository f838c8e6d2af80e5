import Foundation

/// Finds a model given as a hub id (`HuggingFaceM4/idefics2-8b`) in the local Hugging Face cache, never the network.
/// The layout is the hub client's: `models--ORG--NAME/refs/REVISION` holds a commit hash, `snapshots/HASH/` holds the
/// files as symlinks into `blobs/`. A ref that is not a commit hash or a symlink that leaves the model's cache folder
/// is refused, so a tampered cache cannot make us read files elsewhere.
public enum HubCache {
    /// Cache roots in the order huggingface_hub uses them.
    public static func roots(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var roots = [String]()
        if let cache = environment["HF_HUB_CACHE"] ?? environment["HUGGINGFACE_HUB_CACHE"] { roots.append(cache) }
        if let home = environment["HF_HOME"] { roots.append(home + "/hub") }
        let userHome = environment["HOME"] ?? NSHomeDirectory()
        roots.append((environment["XDG_CACHE_HOME"] ?? userHome + "/.cache") + "/huggingface/hub")
        return roots
    }

    public static func looksLikeModelID(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && !$0.hasPrefix(".") }
    }

    static func isCommitHash(_ text: some StringProtocol) -> Bool {
        text.count == 40 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    /// The snapshot folder of `id` at `revision` (a branch or tag in `refs/`, or a commit hash); without a revision,
    /// `refs/main`, else the newest complete snapshot.
    public static func resolve(_ id: String, revision: String? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        var searched = [String]()
        for root in roots(environment: environment) {
            let repo = URL(fileURLWithPath: root).appendingPathComponent("models--" + id.replacingOccurrences(of: "/", with: "--"))
            searched.append(repo.path)
            guard FileManager.default.fileExists(atPath: repo.path) else { continue }
            let snapshot = try snapshotFolder(repo: repo, revision: revision)
            try checkSnapshot(snapshot, repo: repo)
            return snapshot
        }
        throw CheckpointError.modelNotInCache(id: id, searched: searched)
    }

    private static func snapshotFolder(repo: URL, revision: String?) throws -> URL {
        let fileManager = FileManager.default
        let snapshots = repo.appendingPathComponent("snapshots")
        let name = revision ?? "main"
        guard !name.isEmpty, !name.split(separator: "/").contains(".."), !name.hasPrefix("/") else {
            throw CheckpointError.invalidCache(path: repo.path, reason: "revision \"\(name)\" is not a branch, tag or commit")
        }
        let ref = repo.appendingPathComponent("refs/" + name)
        if let text = try? String(contentsOf: ref, encoding: .utf8) {
            let hash = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard isCommitHash(hash) else {
                throw CheckpointError.invalidCache(path: ref.path, reason: "holds \"\(hash.prefix(60))\", not a 40-digit commit hash")
            }
            return snapshots.appendingPathComponent(hash)
        }
        if isCommitHash(name), fileManager.fileExists(atPath: snapshots.appendingPathComponent(name).path) {
            return snapshots.appendingPathComponent(name)
        }
        let available = ((try? fileManager.contentsOfDirectory(atPath: snapshots.path)) ?? []).filter { isCommitHash($0) }
        if revision == nil {
            let newest = available.map { snapshots.appendingPathComponent($0) }
                .filter { fileManager.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
                .max { modificationDate($0) < modificationDate($1) }
            if let newest { return newest }
        }
        let refs = (fileManager.enumerator(atPath: repo.appendingPathComponent("refs").path)?.allObjects as? [String]) ?? []
        throw CheckpointError.invalidCache(path: repo.path, reason: "has no revision \"\(name)\" (refs: "
            + "\(refs.isEmpty ? "none" : refs.sorted().joined(separator: ", ")); snapshots: "
            + "\(available.isEmpty ? "none" : available.sorted().joined(separator: ", ")))")
    }

    /// Every file of the snapshot must lie inside the model's cache folder once symlinks are followed, and exist.
    private static func checkSnapshot(_ snapshot: URL, repo: URL) throws {
        let fileManager = FileManager.default
        guard let repoPath = realPath(repo.path), let entries = fileManager.enumerator(atPath: snapshot.path) else {
            throw CheckpointError.invalidCache(path: snapshot.path, reason: "snapshot folder is missing (incomplete download?)")
        }
        while let entry = entries.nextObject() as? String {
            let path = snapshot.appendingPathComponent(entry).path
            guard let target = realPath(path) else {
                throw CheckpointError.invalidCache(path: path, reason: "is a broken link (incomplete download?)")
            }
            guard target.hasPrefix(repoPath + "/") else {
                throw CheckpointError.invalidCache(path: path, reason: "points outside the model's cache folder, to \(target)")
            }
        }
        guard fileManager.fileExists(atPath: snapshot.appendingPathComponent("config.json").path) else {
            throw CheckpointError.invalidCache(path: snapshot.path, reason: "has no config.json (incomplete download?)")
        }
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func modificationDate(_ url: URL) -> Date {
        (try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
    }
}
