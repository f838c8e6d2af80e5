/// NaViT-style position ids of transformers 5.23's `Idefics2VisionEmbeddings`: an image of `rows` x `columns`
/// patches maps each patch's fractional coordinate (index / count, in float32, clamped below 1) to one of the
/// `patchesPerSide` buckets of the learned grid; id = rowBucket * patchesPerSide + columnBucket.
public enum VisionPositions {
    /// Buckets of one axis with `count` patches.
    public static func buckets(count: Int, patchesPerSide: Int) -> [Int] {
        let boundaries = Self.boundaries(patchesPerSide)
        let step = Float(1) / Float(count)
        return (0..<count).map { index in
            let coordinate = min(Float(index) * step, Float(1 - 1e-6))
            // torch.bucketize(right=True): the number of boundaries <= coordinate.
            return boundaries.prefix { $0 <= coordinate }.count
        }
    }

    public static func ids(rows: Int, columns: Int, patchesPerSide: Int) -> [Int] {
        let rowBuckets = buckets(count: rows, patchesPerSide: patchesPerSide)
        let columnBuckets = buckets(count: columns, patchesPerSide: patchesPerSide)
        return rowBuckets.flatMap { row in columnBuckets.map { row * patchesPerSide + $0 } }
    }

    /// `torch.arange(1/N, 1.0, 1/N)` as torch 2.13's CPU kernel computes it in float32: the length from double
    /// arithmetic; elements below the last multiple of 16 come from 8-lane vectors (lane j of the vector starting
    /// at c is float32(c-th value) + j*step, rounded again), the rest are float32(start + k*step). The two ways
    /// differ in the last bit for some k, which can move a patch that sits exactly on a boundary.
    static func boundaries(_ n: Int) -> [Float] {
        let step = 1.0 / Double(n)
        let count = max(0, Int(((1.0 - step) / step).rounded(.up)))
        let vectorized = 16 * (count / 16)
        return (0..<count).map { k in
            guard k < vectorized else { return Float(step + Double(k) * step) }
            let laneStart = Float(step + Double(k - k % 8) * step)
            return Float(Double(laneStart) + Double(k % 8) * step)
        }
    }
}
