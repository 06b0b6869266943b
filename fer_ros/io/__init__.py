"""Images and files: the one image-message decoder and encoders, image files, atomic writes and
hashes, the debug overlay."""
