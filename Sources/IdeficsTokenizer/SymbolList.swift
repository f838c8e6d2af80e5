/// A word being merged: a doubly linked list of symbols stored in parallel arrays, merged in O(n log n) with a
/// priority queue of candidate pairs, mirroring `tokenizers`' `Word::merge_all` (models/bpe/word.rs).
struct SymbolList {
    private var id: [Int32] = []
    private var previous: [Int32] = []
    private var next: [Int32] = []
    /// Byte length; 0 marks a symbol absorbed into its left neighbour.
    private var length: [Int32] = []

    init(capacity: Int) {
        id.reserveCapacity(capacity)
        previous.reserveCapacity(capacity)
        next.reserveCapacity(capacity)
        length.reserveCapacity(capacity)
    }

    mutating func append(_ symbol: Int32, length byteLength: Int32) {
        let index = Int32(id.count)
        if index > 0 { next[Int(index) - 1] = index }
        id.append(symbol)
        previous.append(index - 1)
        next.append(-1)
        length.append(byteLength)
    }

    /// Ids of the surviving symbols, in order.
    var ids: [Int] {
        zip(id, length).compactMap { $1 == 0 ? nil : Int($0) }
    }

    /// Repeatedly applies the lowest-ranked merge (leftmost first on ties). Queue entries can go stale as their
    /// neighbours merge; like tokenizers, an entry is skipped unless its position still starts a pair whose
    /// merge produces the entry's id.
    mutating func mergeAll(using merges: [UInt64: (rank: Int32, id: Int32)]) {
        var queue = MergeQueue()
        queue.reserve(id.count)
        for position in 0..<max(0, id.count - 1) {
            if let merge = merges[Self.key(id[position], id[position + 1])] {
                queue.push(Candidate(rank: merge.rank, position: Int32(position), id: merge.id))
            }
        }
        while let top = queue.pop() {
            let position = Int(top.position)
            guard length[position] != 0, next[position] != -1 else { continue }
            let right = Int(next[position])
            guard let current = merges[Self.key(id[position], id[right])], current.id == top.id else { continue }

            id[position] = top.id
            length[position] += length[right]
            next[position] = next[right]
            length[right] = 0
            if next[right] != -1 { previous[Int(next[right])] = Int32(position) }

            if previous[position] >= 0 {
                let left = Int(previous[position])
                if let merge = merges[Self.key(id[left], id[position])] {
                    queue.push(Candidate(rank: merge.rank, position: Int32(left), id: merge.id))
                }
            }
            if next[position] != -1, let merge = merges[Self.key(id[position], id[Int(next[position])])] {
                queue.push(Candidate(rank: merge.rank, position: Int32(position), id: merge.id))
            }
        }
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 { UInt64(UInt32(left)) << 32 | UInt64(UInt32(right)) }
}

/// A possible merge of the pair starting at `position` into `id`.
private struct Candidate {
    var rank: Int32
    var position: Int32
    var id: Int32

    @inline(__always)
    func precedes(_ other: Candidate) -> Bool {
        rank != other.rank ? rank < other.rank : position < other.position
    }
}

/// Binary min-heap ordered by (rank, position).
private struct MergeQueue {
    private var heap: [Candidate] = []

    mutating func reserve(_ capacity: Int) { heap.reserveCapacity(capacity) }

    mutating func push(_ candidate: Candidate) {
        heap.append(candidate)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].precedes(heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
