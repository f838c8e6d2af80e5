import ArgumentParser
import Foundation
import Idefics

struct BenchImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-image",
        abstract: "Measure decoding an image file and running the Idefics2 image processor on it (best of --runs).")

    @Option(help: "The image file.")
    var image: String

    @Flag(inversion: .prefixedNo, help: "Split into four crops plus the whole.")
    var imageSplitting = true

    @Option(help: "Repetitions; the best run is reported.")
    var runs = 5

    func run() throws {
        let processor = Idefics2ImageProcessor()
        let overrides = Idefics2ImageProcessorOverrides(doImageSplitting: imageSplitting)
        var best = (decode: Double.infinity, process: Double.infinity, total: Double.infinity)
        var shape: [Int] = []
        for _ in 0..<max(1, runs) {
            let start = ContinuousClock.now
            let rgb = try ImageInput.load(image)
            let decoded = ContinuousClock.now
            let batch = try processor.batch([[rgb]], overrides: overrides)
            let end = ContinuousClock.now
            shape = [1, batch.maxImages, 3, batch.height, batch.width]
            best = (min(best.decode, (decoded - start).seconds), min(best.process, (end - decoded).seconds),
                    min(best.total, (end - start).seconds))
        }
        print(String(format: "image=%@ pixel_values=%@ decode=%.3fs process=%.3fs total=%.3fs (best of %d)",
                     image, "\(shape)", best.decode, best.process, best.total, max(1, runs)))
    }
}
