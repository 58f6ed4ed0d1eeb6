"""mtlmad's data layer, at the bottom of the package: it imports only `mtlmad.core`, `mtlmad.ops` and itself.

Nothing here scores or trains (tests/test_house.py checks it). One module per concern: `images` (nbs/01_data.images:
files, bytes and arrays into the model's input), `folders` (nbs/01a: sample tables, one table of folder layouts),
`loading` (nbs/01b: the torch Dataset, training images, splits in memory), `brain` (nbs/01c: the embedded MRI and the
demo set), `volume_io` (nbs/01d: NIfTI and DICOM), `volume_sets` (nbs/01e: datasets from folders of volumes), `lgg`
(nbs/01f: the LGG MRI set), `lesions` (nbs/01g: pasted evaluation lesions). This package stub is the only hand-written
file here; the folder also ships the embedded MRI (brain_mri.npz) with its licence and provenance."""
