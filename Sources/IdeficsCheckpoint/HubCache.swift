import Foundation

/// Finds a model given as a hub id (`HuggingFaceM4/idefics2-8b`) in the local Hugging Face cache, never the network.
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

    /// The snapshot folder of `id`: the revision `refs/<revision>` names, else the newest snapshot.
    public static func resolve(_ id: String, revision: String = "main",
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        let fileManager = FileManager.default
        var searched = [String]()
        for root in roots(environment: environment) {
            let repo = URL(fileURLWithPath: root).appendingPathComponent("models--" + id.replacingOccurrences(of: "/", with: "--"))
            searched.append(repo.path)
            let snapshots = repo.appendingPathComponent("snapshots")
            if let ref = try? String(contentsOf: repo.appendingPathComponent("refs/\(revision)"), encoding: .utf8) {
                let snapshot = snapshots.appendingPathComponent(ref.trimmingCharacters(in: .whitespacesAndNewlines))
                if fileManager.fileExists(atPath: snapshot.appendingPathComponent("config.json").path) { return snapshot }
            }
            let candidates = (try? fileManager.contentsOfDirectory(at: snapshots, includingPropertiesForKeys: [.contentModificationDateKey])) ?? []
            let newest = candidates
                .filter { fileManager.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
                .max { modificationDate($0) < modificationDate($1) }
            if let newest { return newest }
        }
        throw CheckpointError.modelNotInCache(id: id, searched: searched)
    }

    private static func modificationDate(_ url: URL) -> Date {
        (try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
    }
}
