/// One processed image as the vision tower takes it: normalized float32 values, channels first [3, height, width].
public struct PixelImage: Sendable, Equatable {
    public let height: Int
    public let width: Int
    public let values: [Float]

    public init(height: Int, width: Int, values: [Float]) {
        precondition(values.count == 3 * height * width, "pixel values do not match \(height)x\(width)x3")
        self.height = height
        self.width = width
        self.values = values
    }
}

extension PixelImage {
    /// The image's whole `size` x `size` patches in row-major order, each as (channel, y, x) pixel values: the
    /// layout of a patch-embedding conv kernel, so the convolution is one matrix product.
    func patches(size p: Int) -> [Float] {
        let (rows, columns) = (height / p, width / p)
        let patchLength = 3 * p * p
        var out = [Float](repeating: 0, count: rows * columns * patchLength)
        for row in 0..<rows {
            for column in 0..<columns {
                var offset = (row * columns + column) * patchLength
                for channel in 0..<3 {
                    for y in 0..<p {
                        let source = (channel * height + row * p + y) * width + column * p
                        for x in 0..<p { out[offset + x] = values[source + x] }
                        offset += p
                    }
                }
            }
        }
        return out
    }
}
