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

    @Option(parsing: .unconditional, help: "Repetitions; the best run is reported (1...1000).")
    var runs = 5

    func validate() throws {
        try checkOption("runs", runs, 1...1000)
    }

    func run() throws {
        let processor = Idefics2ImageProcessor()
        let overrides = Idefics2ImageProcessorOverrides(doImageSplitting: imageSplitting)
        var best = (decode: Double.infinity, process: Double.infinity, total: Double.infinity)
        var shape: [Int] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let rgb = try ImageInput.load(image)
            let decoded = ContinuousClock.now
            let batch = try processor.batch([[rgb]], overrides: overrides)
            let end = ContinuousClock.now
            shape = [1, batch.maxImages, 3, batch.height, batch.width]
            best = (min(best.decode, (decoded - start).seconds), min(best.process, (end - decoded).seconds),
                    min(best.total, (end - start).seconds))
        }
        Terminal.write(String(format: "image=%@ pixel_values=%@ decode=%.3fs process=%.3fs total=%.3fs (best of %d)\n",
                              image, "\(shape)", best.decode, best.process, best.total, runs))
    }
}
