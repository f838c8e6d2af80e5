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
