"""The web page (`videoarchiver web`): live progress, queue, gallery, statistics, control.

It reads the store and the published outputs only; its one write is a control (pause,
resume) or a retry, as the command line makes them.
"""
