"""Stage 0, the facts every stage shares: datasets (classes, palettes, mean/std, input sizes),
model metadata, the model-format table, CamVid on disk, the confusion matrix, the timing loop
and the CUDA runtime helpers. Imports nothing from later stages."""
