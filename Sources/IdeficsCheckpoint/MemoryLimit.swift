import Foundation

/// The memory this process may fill: the machine's, or less where its control group caps it (a container's
/// `--memory`, a systemd unit's MemoryMax), so that weights are not populated into a limit they would overflow.
enum MemoryLimit {
    /// Physical memory, capped by the cgroup v2 `memory.max` or v1 `memory.limit_in_bytes` of this process's group.
    static func bytes() -> Int {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        let groups = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        let caps = limitFiles(procSelfCgroup: groups).compactMap { path in
            (try? String(contentsOfFile: path, encoding: .utf8)).flatMap(limit(fromFile:))
        }
        return caps.reduce(physical) { min($0, $1) }
    }

    /// The limit files of the groups /proc/self/cgroup names: the v2 group ("0::/path") and v1's memory controller
    /// ("N:memory:/path", or among other controllers "N:cpu,memory:/path"), under `root`.
    static func limitFiles(procSelfCgroup text: String, root: String = "/sys/fs/cgroup") -> [String] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { return nil }
            let path = fields[2] == "/" ? "" : String(fields[2])
            if fields[0] == "0", fields[1].isEmpty { return root + path + "/memory.max" }
            if fields[1].split(separator: ",").contains("memory") { return root + "/memory" + path + "/memory.limit_in_bytes" }
            return nil
        }
    }

    /// A limit file's bytes; nil for v2's "max" and v1's unlimited (Int64.max rounded down to a page).
    static func limit(fromFile text: String) -> Int? {
        guard let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0, value < 1 << 60 else {
            return nil
        }
        return value
    }
}
