"""Text in view: when a message asks to read, the text OCR finds in its photos joins the prompt.

request.py decides, from what a person typed or said, whether a message asks to read and
which photos it asks about; prompt.py words the lines read (encoders/text_reader.py) for the
language model. LunettesModel runs the reader only then, so other questions keep their speed.
"""
