// The library product: one import for applications embedding swift-idefics.
@_exported import IdeficsCheckpoint
@_exported import IdeficsFiles
@_exported import IdeficsGeneration
@_exported import IdeficsImages
@_exported import IdeficsModels
@_exported import IdeficsTensors
@_exported import IdeficsTokenizer
