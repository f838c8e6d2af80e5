/// Keys and values of every processed position, per layer: [positions, kvHeads * headDim] float32 rows.
/// Rows are indexed by slot (order of arrival); the sliding window and causality are applied on slots.
public struct KVCache: Sendable {
    public private(set) var keys: [[Float]]
    public private(set) var values: [[Float]]
    public private(set) var count = 0
    public let rowWidth: Int

    public init(layers: Int, rowWidth: Int) {
        keys = Array(repeating: [], count: layers)
        values = Array(repeating: [], count: layers)
        self.rowWidth = rowWidth
    }

    /// Allocates room for `rows` slots in every layer up front (a sequence's prompt and its new tokens), so that
    /// decoding appends without reallocating and copying the cache.
    public mutating func reserve(rows: Int) {
        for layer in keys.indices {
            keys[layer].reserveCapacity(hugePages: rows * rowWidth)
            values[layer].reserveCapacity(hugePages: rows * rowWidth)
        }
    }

    mutating func append(layer: Int, keys newKeys: ArraySlice<Float>, values newValues: ArraySlice<Float>) {
        keys[layer].append(contentsOf: newKeys)
        values[layer].append(contentsOf: newValues)
    }

    /// Called once per forward pass, after every layer appended its rows.
    mutating func advance(by rows: Int) {
        count += rows
        precondition(keys.allSatisfy { $0.count == count * rowWidth }, "KV cache layers out of step")
    }

    /// Gives back room reserved past the filled slots (a cache kept after its request ended holds only what it ran).
    public mutating func shrinkToFit() {
        for layer in keys.indices where keys[layer].capacity > keys[layer].count {
            keys[layer] = keys[layer].withUnsafeBufferPointer { Array($0) } // a new buffer of the filled size
            values[layer] = values[layer].withUnsafeBufferPointer { Array($0) }
        }
    }

    /// Forgets everything after the first `rows` slots (e.g. to reuse a shared prompt prefix).
    public mutating func truncate(to rows: Int) {
        precondition(rows <= count)
        for layer in keys.indices {
            keys[layer].removeLast((count - rows) * rowWidth)
            values[layer].removeLast((count - rows) * rowWidth)
        }
        count = rows
    }
}
